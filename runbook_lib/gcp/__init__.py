"""Control-plane access, one module per GCP product (gcpdiag style).

``api`` is the shared REST client (deadlines, retries, pagination, error translation) and the
``ApiCall`` remediation request; ``vpcaccess``, ``sqladmin``, ``compute``, ``secretmanager`` and
``run`` each offer ``gather(api, params)``, typed views over the raw JSON and pure remediation
builders; ``networkmanagement`` runs a Connectivity Test (its gather also takes the Cloud Run
revision to start from); ``monitoring`` queries Cloud Monitoring over gRPC.
"""
