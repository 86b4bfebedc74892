"""Ray Serve wrappers around llasa_core and verifiers: one deployment per stage, the search
orchestrator, the gRPC ingress, and `deployments.app:build_app` that serve_config.yaml names."""
