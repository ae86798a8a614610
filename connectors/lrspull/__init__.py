"""Copy statements from another conformant xAPI LRS (GET with ``more`` paging)."""
