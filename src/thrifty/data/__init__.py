"""Data: read sources, count words, keep the ledger, tokenize, and store tokens for training."""
