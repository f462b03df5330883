"""``python -m seed``: synthetic CRM data for Supabase, a resumable and verified
Supabase -> Convex migration, and the load tests' workload file (docs/seed.md)."""
