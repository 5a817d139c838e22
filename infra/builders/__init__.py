"""Pure builders: DeploymentPlan → the Kubernetes objects and chart references of one concern.

The Pulumi components (`infra/<concern>.py`) and `leanrag render` both apply these bundles,
so every manifest is written once, here and in `templates/platform/`.
"""
