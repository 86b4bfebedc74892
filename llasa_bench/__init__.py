"""`llasa-bench`: compute against quality, load against latency, replicas per stage."""
