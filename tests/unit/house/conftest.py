"""``toy_family.py`` is a user's module, imported the way users' modules are (``imports:``,
``--import``), never by pytest's collection."""

collect_ignore = ["toy_family.py"]
