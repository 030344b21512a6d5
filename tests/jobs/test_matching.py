"""Box matching between finders (numbers measured on dlib HOG vs YuNet boxes of the same faces)."""

from faces.jobs.matching import match_boxes, same_face


def test_tight_square_and_taller_box_of_one_face_match():
    hog = (100, 100, 80, 80)
    yunet = (95, 85, 70, 105)  # narrower and taller, as YuNet frames the same face
    assert same_face(hog, yunet)


def test_neighbouring_faces_do_not_match():
    assert not same_face((100, 100, 80, 80), (170, 100, 80, 80))
    # a small face whose box sits inside a big one is not the same face
    assert not same_face((100, 100, 200, 200), (110, 110, 40, 40))


def test_one_to_one_best_overlap_first():
    existing = [(0, 0, 50, 50), (200, 0, 50, 50)]
    new = [(205, 2, 48, 52), (3, 1, 50, 55), (400, 400, 30, 30)]
    assert match_boxes(new, existing) == {0: 1, 1: 0}
    # two new boxes on one existing face: only the better one is matched
    assert match_boxes([(0, 0, 50, 50), (5, 5, 50, 50)], [(0, 0, 50, 50)]) == {0: 0}
