"""NurseryCry shared."""
