// The function app: a Flex Consumption plan (FC1, Linux) and the Python 3.11 app on it, running
// as the user-assigned identity, with the app settings given by main.bicep and no basic-auth
// (FTP/SCM) publishing credentials. On Flex Consumption the runtime stack and version live in
// functionAppConfig.runtime (FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not used)
// and the code is deployed as a package into a blob container of the app's storage account.

param name string
param planName string
param location string = resourceGroup().location
param tags object = {}

@description('azd service name (azure.yaml) this app is deployed as.')
param serviceName string = 'leads'

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Blob endpoint of the app storage account, without a trailing slash.')
param storageBlobEndpoint string

@description('Container in the app storage account that holds the deployment package.')
param deploymentContainerName string

@description('App settings, applied as they are (see main.bicep).')
param appSettings object

// unverified: 512 MB is documented for Flex Consumption, but a public issue reports the
// 2024-04-01 API rejecting it in some regions until the rollout reached them; 2048 is safe.
@description('Instance memory: 512, 2048 (the default) or 4096 MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on instances per function group (40 is the lowest value every region accepts).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      // The whole set of app settings: a deployment replaces settings changed by hand.
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Deployments use Microsoft Entra (azd, func, az), never FTP or SCM user/password.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output planName string = plan.name
output defaultHostName string = site.properties.defaultHostName
