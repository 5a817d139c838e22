"""Post-deploy GuideLLM benchmark and the deployment gate."""
