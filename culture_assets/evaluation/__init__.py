"""Evaluation: dataset manifests and loaders, log-likelihood and chat scorers, metrics with CIs, WVS alignment."""
