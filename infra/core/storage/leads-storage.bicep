// The storage account the commercial marketplace writes customer leads into (Partner Center's
// "Azure Table" lead destination). Partner Center only accepts an account-key connection string,
// so shared-key access stays ON here; the function app itself reads with its managed identity.
//
// main.bicep deploys this module only when no existing account is given
// (existingLeadsStorageAccountName); an account that already receives leads is used as it is.

param name string
param location string = resourceGroup().location
param tags object = {}

resource leads 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // Geo-redundant: the leads are customer data; a few MB cost cents either way.
    name: 'Standard_GRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    // Partner Center authenticates with the account key from the connection string.
    allowSharedKeyAccess: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Partner Center writes from Microsoft's service over the internet (no published addresses).
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

var tableEndpoint = leads.properties.primaryEndpoints.table

output name string = leads.name
output tableEndpoint string = endsWith(tableEndpoint, '/') ? substring(tableEndpoint, 0, length(tableEndpoint) - 1) : tableEndpoint
