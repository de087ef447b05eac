// A custom role holding only what Microsoft documents for sending email through Azure
// Communication Services with a Microsoft Entra identity (the least-privilege alternative to the
// built-in "Communication and Email Service Owner", which grants every ACS operation).
// Assignable only inside this resource group.
//
// unverified: the action list is the one Microsoft documents for SMTP AUTH with an Entra
// application ("Use a custom role to limit permissions"); that the REST send API used by
// azure-communication-email accepts the same set is expected but only Azure can confirm.
// If sends fail with 403, deploy with useBuiltInEmailRole=true.

@description('Unique role name in the tenant.')
param roleName string

resource emailSender 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'marketplace-lead-alerts-email-sender')
  properties: {
    roleName: roleName
    description: 'Send email through the Azure Communication Services resources of this resource group. Nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Communication/CommunicationServices/Read'
          'Microsoft.Communication/CommunicationServices/Write'
          'Microsoft.Communication/EmailServices/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

@description('The role definition GUID, for role.bicep.')
output roleDefinitionGuid string = emailSender.name
