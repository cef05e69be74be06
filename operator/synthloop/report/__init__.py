"""`synthloop report`: a self-contained HTML page (and PNG) of a loop: lineage, gates, data, cost."""
