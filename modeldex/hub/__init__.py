"""Everything CivitAI: API client, downloads, sync and `modeldex serve`."""
