// The one role-assignment module: grants one role to one principal on one resource of the
// resource group it is deployed to (never on the whole group), so each grant is as narrow as
// the resource.

@description('Type of the resource the role is granted on.')
@allowed([
  'Microsoft.Storage/storageAccounts'
  'Microsoft.Communication/communicationServices'
  'Microsoft.Insights/components'
])
param targetType string

@description('Name of that resource (in the resource group this module is deployed to).')
param targetName string

@description('Object (principal) id of the identity that receives the role.')
param principalId string

@description('ServicePrincipal for managed identities (avoids failures while a new identity replicates); empty lets Azure look the principal up.')
param principalType string = 'ServicePrincipal'

@description('GUID of a built-in or custom role definition.')
param roleDefinitionGuid string

@description('Why this grant exists; shown on the assignment in the portal.')
param assignmentDescription string = ''

var roleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: targetName
}

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' existing = {
  name: targetName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: targetName
}

resource onStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (targetType == 'Microsoft.Storage/storageAccounts') {
  name: guid(storageAccount.id, principalId, roleDefinitionId)
  scope: storageAccount
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: empty(principalType) ? null : principalType
    description: assignmentDescription
  }
}

resource onCommunication 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (targetType == 'Microsoft.Communication/communicationServices') {
  name: guid(communicationService.id, principalId, roleDefinitionId)
  scope: communicationService
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: empty(principalType) ? null : principalType
    description: assignmentDescription
  }
}

resource onInsights 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (targetType == 'Microsoft.Insights/components') {
  name: guid(applicationInsights.id, principalId, roleDefinitionId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: empty(principalType) ? null : principalType
    description: assignmentDescription
  }
}
