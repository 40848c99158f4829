"""支援実施報告書: the expert writes it after a dispatch, reviewers accept or return it, the fee follows."""
