"""Configuration validated at the edge: the YAML files' typed models, their checked fields, managed-server blocks."""
