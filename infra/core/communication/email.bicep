// Azure Communication Services email: an Email Communication Service with its free
// Azure-managed domain (<guid>.azurecomm.net) and sender DoNotReply, optionally a custom domain
// of your own, and the Communication Service the app sends through (linked to the domain).
//
// A custom domain must be verified (DNS records) before it can be linked and used as sender, so
// it takes two deployments: first with customEmailDomain set (creates it; add the DNS records
// from the CUSTOM_EMAIL_DOMAIN_DNS_RECORDS output and start verification), then, once verified,
// with useCustomEmailDomain=true (links it and sends from DoNotReply@<your domain>).

param emailServiceName string
param communicationServiceName string

@description('Where ACS stores data at rest, e.g. "United States", "Europe", "UK", "Australia".')
param dataLocation string = 'United States'

@description('Your own sender domain, e.g. leads.contoso.com; empty for the Azure-managed domain only.')
param customEmailDomain string = ''

@description('Send from the custom domain (only after its DNS verification succeeded).')
param useCustomEmailDomain bool = false

@description('Display name recipients see next to the sender address.')
param senderDisplayName string = 'Marketplace lead alerts'

@description('Turn off ACS access keys: only Microsoft Entra identities can send.')
param disableLocalAuth bool = true

param tags object = {}

var senderUsername = 'DoNotReply'
var hasCustomDomain = !empty(customEmailDomain)
var sendFromCustomDomain = hasCustomDomain && useCustomEmailDomain

resource emailService 'Microsoft.Communication/emailServices@2025-05-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource managedDomain 'Microsoft.Communication/emailServices/domains@2025-05-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

// The managed domain comes with DoNotReply; declaring it pins the display name.
// unverified: that ARM accepts this update on an Azure-managed domain is what public templates
// rely on; Microsoft's docs only describe adding sender usernames to custom domains.
resource managedSender 'Microsoft.Communication/emailServices/domains/senderUsernames@2025-05-01' = {
  parent: managedDomain
  name: toLower(senderUsername)
  properties: {
    username: senderUsername
    displayName: senderDisplayName
  }
}

resource customDomain 'Microsoft.Communication/emailServices/domains@2025-05-01' = if (hasCustomDomain) {
  parent: emailService
  name: hasCustomDomain ? customEmailDomain : 'unused.invalid'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'CustomerManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource customSender 'Microsoft.Communication/emailServices/domains/senderUsernames@2025-05-01' = if (hasCustomDomain) {
  parent: customDomain
  name: toLower(senderUsername)
  properties: {
    username: senderUsername
    displayName: senderDisplayName
  }
}

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    // unverified: disableLocalAuth (API 2025-05-01) is documented in the resource schema; that
    // email sends with an Entra token still work with it on is expected, not tested here.
    disableLocalAuth: disableLocalAuth
    linkedDomains: sendFromCustomDomain ? [managedDomain.id, customDomain.id] : [managedDomain.id]
  }
  dependsOn: [
    managedSender
  ]
}

var senderDomain = sendFromCustomDomain ? customDomain.properties.mailFromSenderDomain : managedDomain.properties.mailFromSenderDomain

output communicationServiceName string = communicationService.name
output emailServiceName string = emailService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
output senderAddress string = '${senderUsername}@${senderDomain}'
// DNS records (TXT/CNAME) to create for the custom domain; not secrets.
output customDomainVerificationRecords object = hasCustomDomain ? customDomain.properties.verificationRecords : {}
