"""Statistics per owner and for the admin."""

from faces.sharing import stats
from faces.store.models import FaceState, FinderStatus

from .conftest import make_face, make_image, make_name, make_user


def test_owner_and_admin_statistics(db):
    ann, bob = make_user(db, "ann"), make_user(db, "bob", admin=True)
    carl = make_name(db, ann, "Carl")
    make_name(db, ann, "Dora")
    one = make_image(db, ann, finders={"dlib": (FinderStatus.DONE, 1.25), "opencv": (FinderStatus.DONE, 0.25)})
    make_image(db, ann, finders={"dlib": (FinderStatus.NO_FACE, 0.5), "opencv": (FinderStatus.ERROR, 0.0)})
    make_image(db, ann, finders={"dlib": (FinderStatus.PENDING, 0.0)})
    broken = make_image(db, ann, finders={})
    broken.error_code, broken.error = "truncated", "The file is cut short."
    make_face(db, one, name=carl)
    make_face(db, one, guess=carl, x=100)
    make_face(db, one, state=FaceState.UNKNOWN, x=200)
    make_face(db, one, state=FaceState.IGNORED, x=300)
    make_face(db, one, state=FaceState.REMOVED, x=400)
    make_face(db, one, x=500)
    s = stats.owner_stats(db, ann.id)
    assert (s["images"], s["faces"], s["confirmed"], s["guessed"], s["unknown"], s["ignored"], s["removed"],
            s["unnamed"], s["names"]) == (4, 6, 1, 1, 1, 1, 1, 1, 2)
    assert s["errors"] == 2  # one unreadable file, one finder error
    assert s["seconds_detecting"] == 2.0
    assert s["finders"]["dlib"]["processed"] == 2 and s["finders"]["dlib"]["pending"] == 1
    assert s["finders"]["opencv"] == {"processed": 2, "faces": 1, "no_face": 0, "errors": 1, "pending": 0,
                                      "seconds": 0.25}
    rows = stats.admin_stats(db)
    assert [(r["username"], r["images"], r["is_admin"]) for r in rows] == [("ann", 4, False), ("bob", 0, True)]
