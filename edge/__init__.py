"""NurseryCry edge."""
