"""World Values Survey: seed questions, survey loading, answer distributions."""
