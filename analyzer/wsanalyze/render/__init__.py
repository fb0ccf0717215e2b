"""Views of the result objects in ``wsanalyze.report``: terminal, JSON, HTML, Mermaid."""
