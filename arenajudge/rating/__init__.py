"""From judgments to numbers: battles, Bradley-Terry ratings with a bootstrap, style control, paired comparisons, decisions."""
