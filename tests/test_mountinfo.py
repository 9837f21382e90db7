"""mountinfo parsing: optional fields, octal escapes, superblock options (lines as the kernel
writes them)."""

from sysbox.linux import mountinfo

TEXT = (
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro\n"
    "35 22 0:31 / /with\\040space rw,nosuid shared:9 master:3 - tmpfs tmp\\011fs rw,size=64k\n"
    "41 22 0:40 /sub/dir /bind ro,relatime - xfs /dev/vdb rw,attr2\n"
    "50 22 0:45 / /merged rw - overlay overlay rw,lowerdir=/l1:/l\\0722,upperdir=/u,workdir=/w,index\n"
)


def test_fields_with_and_without_optional_fields():
    root, spaced, bind, ovl = mountinfo.parse(TEXT)
    assert (root.id, root.parent, root.point, root.fstype, root.source) == (22, 1, "/", "ext4", "/dev/vda1")
    assert (spaced.point, spaced.source, spaced.options) == ("/with space", "tmp\tfs", "rw,nosuid")
    assert (bind.root, bind.point, bind.options, bind.super_options) == ("/sub/dir", "/bind", "ro,relatime", "rw,attr2")
    assert ovl.fstype == "overlay"


def test_superblock_options():
    ovl = mountinfo.parse(TEXT)[3]
    assert ovl.super_option("lowerdir") == "/l1:/l:2"  # \072 is ':' inside a lower dir's name
    assert ovl.super_option("index") == ""  # a flag without a value
    assert ovl.super_option("redirect_dir") is None


def test_unescape_leaves_other_backslashes():
    assert mountinfo.unescape("a\\134b\\040c\\x") == "a\\b c\\x"


def test_own_mountinfo_parses():
    mounts = mountinfo.read()
    assert any(m.point == "/" for m in mounts) and all(m.id > 0 for m in mounts)
    assert mountinfo.at("/") is not None and mountinfo.fstype_of("/proc/self") == "proc"


def test_mounts_under_sees_escaped_points(monkeypatch):
    from sysbox.linux import tree

    monkeypatch.setattr(mountinfo, "read", lambda pid="self": mountinfo.parse(TEXT))
    assert tree.mounts_under("/with space") == ["/with space"]
    assert tree.mounts_under("/") == ["/", "/with space", "/bind", "/merged"]
    assert tree.mounts_under("/bin") == []  # a prefix of /bind, not a parent of it
