"""Sharing (spec sections 4, 6 and 7): who may see and do what, and what users do with each other.

- ``contacts``, ``groups``: connection requests, named groups of contacts;
- ``permissions``: the library view/write lists (deny wins) and per-image visibility; every web request asks it;
- ``notifications``: "you were tagged" (subscribes to ``face_tagged``; optional e-mail);
- ``photos_of_me``: the faces where a user was tagged, and removing oneself for good;
- ``stats``, ``deletion``, ``admin_settings``: statistics, deleting faces and names, the admin's settings.
"""
