"""Reading results back: tables, figures, the report, predictions."""
