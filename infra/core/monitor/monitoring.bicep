// Monitoring: a Log Analytics workspace and a workspace-based Application Insights component
// that accepts telemetry only from Microsoft Entra identities (no instrumentation-key ingestion).

@description('Name of the Log Analytics workspace.')
param logAnalyticsName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

param location string = resourceGroup().location
param tags object = {}

@description('Days the workspace keeps logs; 30 is included in the ingestion price.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
    // Telemetry must carry an Entra token (the app sends APPLICATIONINSIGHTS_AUTHENTICATION_STRING
    // and its identity holds Monitoring Metrics Publisher on this component).
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output applicationInsightsName string = applicationInsights.name
output logAnalyticsName string = logAnalytics.name
// The connection string names the ingestion endpoint; with local auth disabled it is not a
// credential (ingestion also needs an Entra token).
output connectionString string = applicationInsights.properties.ConnectionString
