// Marketplace Lead Alerts: everything the app needs, in one resource group.
//
//   azd up                                     (azd fills main.parameters.json from its environment)
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<name> alertRecipients=<emails>
//
// See "Deploy to Azure" in README.md for the steps, the Partner Center configuration and the costs.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd environment name); part of every resource name\'s unique token.')
param environmentName string

@minLength(1)
@description('Region of the resources. It must offer the Flex Consumption plan: az functionapp list-flexconsumption-locations')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string = resourceGroup().location

@description('Object id of a person (or pipeline) who may run the operator commands (status, replay, backfill, resend) with their own sign-in; empty for nobody.')
param principalId string = ''

// ---------------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------------

@minLength(3)
@description('Sales recipients of the lead alerts, comma-separated email addresses (LEAD_ALERT_RECIPIENTS).')
param alertRecipients string

@description('Recipients of the Partner Center test lead mail, comma-separated; empty sends it to alertRecipients (LEAD_ADMIN_RECIPIENTS).')
param adminRecipients string = ''

@description('Table the marketplace writes leads into (LEADS_TABLE_NAME).')
param leadsTableName string = 'MarketplaceLeads'

@description('NCRONTAB schedule of the poller, six fields with seconds first (LEADS_POLL_SCHEDULE).')
param pollSchedule string = '0 */1 * * * *'

@description('Minutes each poll re-reads behind its checkpoint (LEADS_POLL_OVERLAP_MINUTES).')
param pollOverlapMinutes string = '5'

@description('ISO-8601 time; on the first run only, leads modified since then are alerted; empty for "from now" (LEADS_START_FROM).')
param leadsStartFrom string = ''

@description('A repeat of the same action by the same customer within this many days is not mailed (LEAD_DUPLICATE_WINDOW_DAYS).')
param duplicateWindowDays string = '14'

// ---------------------------------------------------------------------------------------------
// The leads storage account (Partner Center's Azure Table lead destination)
// ---------------------------------------------------------------------------------------------

@description('Name of a storage account that already receives leads; empty to create a new one in this resource group.')
param existingLeadsStorageAccountName string = ''

@description('Resource group of existingLeadsStorageAccountName; empty for this resource group. A group of its own keeps the leads when this group is deleted.')
param existingLeadsStorageAccountResourceGroup string = ''

// ---------------------------------------------------------------------------------------------
// Email (Azure Communication Services)
// ---------------------------------------------------------------------------------------------

@description('Where Azure Communication Services keeps data at rest.')
param dataLocation string = 'United States'

@description('Optional sender domain of your own, e.g. leads.contoso.com; empty to send from the free Azure-managed domain.')
param customEmailDomain string = ''

@description('Send from customEmailDomain; set only after the domain\'s DNS verification succeeded.')
param useCustomEmailDomain bool = false

@description('Grant the built-in "Communication and Email Service Owner" role instead of the narrower custom role (for deployers who may assign roles but not create role definitions).')
param useBuiltInEmailRole bool = false

// ---------------------------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------------------------

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory in MB.')
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
// resourceGroup().id contains the subscription id: unique per subscription, group, env and region.
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var serviceName = 'leads'
var functionAppName = '${abbrs.webSitesFunctions}${serviceName}-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'

// An empty value (e.g. an unset azd environment variable) means the default.
var leadsTable = empty(leadsTableName) ? 'MarketplaceLeads' : leadsTableName
var schedule = empty(pollSchedule) ? '0 */1 * * * *' : pollSchedule
var overlapMinutes = empty(pollOverlapMinutes) ? '5' : pollOverlapMinutes
var windowDays = empty(duplicateWindowDays) ? '14' : duplicateWindowDays
var acsDataLocation = empty(dataLocation) ? 'United States' : dataLocation

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  communicationAndEmailServiceOwner: '09976791-48a7-449e-bb21-39d1a415f350'
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module monitoring 'core/monitor/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module identity 'core/identity/user-assigned-identity.bicep' = {
  name: 'identity'
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${serviceName}-${resourceToken}'
    location: location
    tags: tags
  }
}

module appStorage 'core/storage/app-storage.bicep' = {
  name: 'app-storage'
  params: {
    name: '${abbrs.storageStorageAccounts}app${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

// The leads account: created here unless an account that already receives leads is named.
var createLeadsAccount = empty(existingLeadsStorageAccountName)
var leadsAccountName = createLeadsAccount ? '${abbrs.storageStorageAccounts}leads${resourceToken}' : existingLeadsStorageAccountName
var leadsResourceGroupName = createLeadsAccount || empty(existingLeadsStorageAccountResourceGroup) ? resourceGroup().name : existingLeadsStorageAccountResourceGroup

module leadsStorage 'core/storage/leads-storage.bicep' = if (createLeadsAccount) {
  name: 'leads-storage'
  params: {
    name: leadsAccountName
    location: location
    tags: tags
  }
}

// Read, not deployed: fails the deployment early when the named account does not exist.
resource existingLeadsAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (!createLeadsAccount) {
  name: leadsAccountName
  scope: resourceGroup(leadsResourceGroupName)
}

var existingLeadsTableEndpoint = createLeadsAccount ? '' : existingLeadsAccount.properties.primaryEndpoints.table
var leadsTableEndpoint = createLeadsAccount ? leadsStorage.outputs.tableEndpoint : (endsWith(existingLeadsTableEndpoint, '/') ? substring(existingLeadsTableEndpoint, 0, length(existingLeadsTableEndpoint) - 1) : existingLeadsTableEndpoint)

module communication 'core/communication/email.bicep' = {
  name: 'communication'
  params: {
    emailServiceName: '${abbrs.communicationEmailServices}${resourceToken}'
    communicationServiceName: '${abbrs.communicationCommunicationServices}${resourceToken}'
    dataLocation: acsDataLocation
    customEmailDomain: customEmailDomain
    useCustomEmailDomain: useCustomEmailDomain
    tags: tags
  }
}

module emailSenderRole 'core/security/email-sender-role.bicep' = if (!useBuiltInEmailRole) {
  name: 'email-sender-role'
  params: {
    roleName: 'Marketplace lead alerts email sender (${resourceGroup().name}, ${uniqueString(resourceGroup().id)})'
  }
}

// --- What the app's identity may do: each grant on one resource ------------------------------

module appBlobOwner 'core/security/role.bicep' = {
  name: 'role-app-blob'
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: appStorage.outputs.name
    principalId: identity.outputs.principalId
    roleDefinitionGuid: roles.storageBlobDataOwner
    assignmentDescription: 'Functions host (AzureWebJobsStorage) blobs and the Flex Consumption deployment package'
  }
}

module appQueueContributor 'core/security/role.bicep' = {
  name: 'role-app-queue'
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: appStorage.outputs.name
    principalId: identity.outputs.principalId
    roleDefinitionGuid: roles.storageQueueDataContributor
    assignmentDescription: 'The lead-alerts queue and its poison queue (queue trigger, poller)'
  }
}

module appTableContributor 'core/security/role.bicep' = {
  name: 'role-app-table'
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: appStorage.outputs.name
    principalId: identity.outputs.principalId
    roleDefinitionGuid: roles.storageTableDataContributor
    assignmentDescription: 'LeadAlertsCheckpoint, LeadAlertsLedger and LeadAlertsCustomers tables'
  }
}

module leadsTableReader 'core/security/role.bicep' = {
  name: 'role-leads-table'
  scope: resourceGroup(leadsResourceGroupName)
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: leadsAccountName
    principalId: identity.outputs.principalId
    roleDefinitionGuid: roles.storageTableDataReader
    assignmentDescription: 'Read the marketplace leads table (query and get only)'
  }
  dependsOn: [
    leadsStorage
  ]
}

module telemetryPublisher 'core/security/role.bicep' = {
  name: 'role-app-insights'
  params: {
    targetType: 'Microsoft.Insights/components'
    targetName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
    roleDefinitionGuid: roles.monitoringMetricsPublisher
    assignmentDescription: 'Send telemetry to Application Insights with Microsoft Entra authentication'
  }
}

module emailSender 'core/security/role.bicep' = {
  name: 'role-email-sender'
  params: {
    targetType: 'Microsoft.Communication/communicationServices'
    targetName: communication.outputs.communicationServiceName
    principalId: identity.outputs.principalId
    roleDefinitionGuid: useBuiltInEmailRole ? roles.communicationAndEmailServiceOwner : emailSenderRole.outputs.roleDefinitionGuid
    assignmentDescription: 'Send the lead alert emails'
  }
}

// --- Optional: the operator commands (python -m shared.cli) for a person; shared keys are off --

module operatorTables 'core/security/role.bicep' = if (!empty(principalId)) {
  name: 'role-operator-table'
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: appStorage.outputs.name
    principalId: principalId
    principalType: '' // a person or a pipeline: let Azure look it up
    roleDefinitionGuid: roles.storageTableDataContributor
    assignmentDescription: 'Operator: status reads the LeadAlerts* tables, backfill writes customer histories'
  }
}

module operatorQueues 'core/security/role.bicep' = if (!empty(principalId)) {
  name: 'role-operator-queue'
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: appStorage.outputs.name
    principalId: principalId
    principalType: '' // a person or a pipeline: let Azure look it up
    roleDefinitionGuid: roles.storageQueueDataContributor
    assignmentDescription: 'Operator: replay moves poison messages back, resend queues a request'
  }
}

module operatorLeads 'core/security/role.bicep' = if (!empty(principalId)) {
  name: 'role-operator-leads'
  scope: resourceGroup(leadsResourceGroupName)
  params: {
    targetType: 'Microsoft.Storage/storageAccounts'
    targetName: leadsAccountName
    principalId: principalId
    principalType: ''
    roleDefinitionGuid: roles.storageTableDataReader
    assignmentDescription: 'Operator: status, backfill and resend read the marketplace leads table'
  }
  dependsOn: [
    leadsStorage
  ]
}

// --- The function app -------------------------------------------------------------------------

// Every app setting of the function app, and nothing else: identities instead of keys.
var appSettings = {
  AzureWebJobsStorage__blobServiceUri: appStorage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: appStorage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: appStorage.outputs.tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  LEADS_STORAGE__tableServiceUri: leadsTableEndpoint
  LEADS_STORAGE__credential: 'managedidentity'
  LEADS_STORAGE__clientId: identity.outputs.clientId
  LEADS_TABLE_NAME: leadsTable
  LEADS_POLL_SCHEDULE: schedule
  LEADS_POLL_OVERLAP_MINUTES: overlapMinutes
  LEADS_START_FROM: leadsStartFrom
  ACS_ENDPOINT: communication.outputs.endpoint
  AZURE_CLIENT_ID: identity.outputs.clientId
  EMAIL_SENDER: communication.outputs.senderAddress
  LEAD_ALERT_RECIPIENTS: alertRecipients
  LEAD_ADMIN_RECIPIENTS: adminRecipients
  LEAD_DUPLICATE_WINDOW_DAYS: windowDays
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${serviceName}-${resourceToken}'
    location: location
    tags: tags
    serviceName: serviceName
    identityId: identity.outputs.id
    storageBlobEndpoint: appStorage.outputs.blobEndpoint
    deploymentContainerName: appStorage.outputs.deploymentContainerName
    appSettings: appSettings
    instanceMemoryMB: instanceMemoryMB
  }
  // The host starts as soon as the site exists: let its storage grants exist first.
  dependsOn: [
    appBlobOwner
    appQueueContributor
    appTableContributor
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd writes them into .azure/<env>/.env)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_LEADS_NAME string = functionApp.outputs.name

output LEADS_STORAGE_ACCOUNT_NAME string = leadsAccountName
output LEADS_STORAGE_RESOURCE_GROUP string = leadsResourceGroupName
// The command that prints the connection string to paste into Partner Center. The key itself is
// never an output: it would be stored in the deployment history.
output PARTNER_CENTER_CONNECTION_STRING_COMMAND string = 'az storage account show-connection-string -g ${leadsResourceGroupName} -n ${leadsAccountName} --query connectionString -o tsv'
output LEADS_TABLE_NAME string = leadsTable
output EMAIL_SENDER string = communication.outputs.senderAddress
output CUSTOM_EMAIL_DOMAIN_DNS_RECORDS object = communication.outputs.customDomainVerificationRecords
