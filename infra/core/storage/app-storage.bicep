// The app's own storage account (AzureWebJobsStorage): Functions host state, the timer's
// schedule status, the Flex Consumption deployment package, the `lead-alerts` queue and the
// LeadAlerts* tables. Only Microsoft Entra identities can use it: shared keys are off.

param name string
param location string = resourceGroup().location
param tags object = {}

@description('Blob container that receives the Flex Consumption deployment package.')
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // Geo-redundant: the ledger and customer history decide what is never mailed twice; at a
    // few MB the difference to LRS is cents a month.
    name: 'Standard_GRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }

  resource blobService 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: {
        enabled: true
        days: 7
      }
      containerDeleteRetentionPolicy: {
        enabled: true
        days: 7
      }
    }

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
      properties: {
        publicAccess: 'None'
      }
    }
  }
}

// primaryEndpoints end with '/'; app settings and the package URL get them without it.
var blobEndpoint = storage.properties.primaryEndpoints.blob
var queueEndpoint = storage.properties.primaryEndpoints.queue
var tableEndpoint = storage.properties.primaryEndpoints.table

output name string = storage.name
output id string = storage.id
output blobEndpoint string = endsWith(blobEndpoint, '/') ? substring(blobEndpoint, 0, length(blobEndpoint) - 1) : blobEndpoint
output queueEndpoint string = endsWith(queueEndpoint, '/') ? substring(queueEndpoint, 0, length(queueEndpoint) - 1) : queueEndpoint
output tableEndpoint string = endsWith(tableEndpoint, '/') ? substring(tableEndpoint, 0, length(tableEndpoint) - 1) : tableEndpoint
output deploymentContainerName string = storage::blobService::deploymentContainer.name
