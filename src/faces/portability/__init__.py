"""Portability and clones (spec section 6): export/import of a library (:mod:`.exchange`), the change log that
writes itself (:mod:`.changes`), the merge rules shared by imports and clone sync (:mod:`.apply`), and the sync
between clones over HTTP (:mod:`.sync`)."""
