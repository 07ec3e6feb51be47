"""NurseryCry training."""
