"""The leaderboard benchmark: suites, runner, results store, statistics and reports."""
