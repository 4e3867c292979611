"""What a person reads: the leaderboard, its text and HTML reports, plots and the battles browser."""
