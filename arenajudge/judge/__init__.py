"""Judging: a judge model compares answers (Arena-Hard pairwise, MT-Bench single and pairwise) and writes judgment records."""
