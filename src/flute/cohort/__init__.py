"""The study's tabular model: StudyVariables schema, cohort simulator, tabular extract mapping."""
