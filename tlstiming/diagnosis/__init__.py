"""Rules over spans: budgets and findings."""
