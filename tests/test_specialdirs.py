"""Host-backed special dirs, on a tmp tree: the image's content copied in with ids shifted into
the container's range, nothing followed out of the rootfs, and the sweep's listing."""

import os
import stat

from sysbox.mgr import specialdirs

UID, GID, SIZE = 1 << 20, (1 << 20) + 7, 65536


def _image(tmp_path):
    rootfs = tmp_path / "rootfs"
    d = rootfs / "var/lib/docker"
    (d / "image/overlay2").mkdir(parents=True)
    (d / "image/overlay2/repositories.json").write_text('{"Repositories": {}}')
    os.chown(d / "image/overlay2/repositories.json", 1000, 1001)
    os.chmod(d / "image/overlay2/repositories.json", 0o640)
    (d / "owned-by-host-user").write_text("x")
    os.chown(d / "owned-by-host-user", 70000, 0)  # outside the container's ids: becomes nobody
    os.symlink("/etc/shadow", d / "link")
    os.mkfifo(d / "fifo")
    return str(rootfs)


def test_content_is_copied_with_ids_shifted(tmp_path):
    rootfs = _image(tmp_path)
    data = str(tmp_path / "data")
    path, created = specialdirs.ensure(data, "docker", "c1", UID, GID, SIZE, rootfs)
    assert created and path == os.path.join(data, "docker", "c1")
    top = os.stat(path)
    assert (top.st_uid, top.st_gid, stat.S_IMODE(top.st_mode)) == (UID, GID, 0o700)
    f = os.stat(os.path.join(path, "image/overlay2/repositories.json"))
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (UID + 1000, GID + 1001, 0o640)
    assert open(os.path.join(path, "image/overlay2/repositories.json")).read() == '{"Repositories": {}}'
    assert os.stat(os.path.join(path, "owned-by-host-user")).st_uid == UID + 65534
    link = os.path.join(path, "link")
    assert os.readlink(link) == "/etc/shadow" and os.lstat(link).st_uid == UID  # copied, not followed
    assert not os.path.lexists(os.path.join(path, "fifo"))  # special files are skipped
    assert specialdirs.ensure(data, "docker", "c1", UID, GID, SIZE, rootfs) == (path, False)  # kept
    assert sorted(specialdirs.on_disk(data)) == [("docker", "c1")]
    specialdirs.remove(data, "docker", "c1")
    assert specialdirs.on_disk(data) == []


def test_a_symlink_in_the_image_path_is_not_followed(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "var").mkdir(parents=True)
    outside = tmp_path / "outside" / "docker"
    outside.mkdir(parents=True)
    (outside / "secret").write_text("host data")
    os.symlink(str(tmp_path / "outside"), rootfs / "var" / "lib")  # the image points its /var/lib away
    path, created = specialdirs.ensure(str(tmp_path / "data"), "docker", "c2", UID, GID, SIZE, str(rootfs))
    assert created and os.listdir(path) == []  # an empty dir, nothing copied from outside the rootfs


def test_no_leftover_of_an_interrupted_copy(tmp_path):
    rootfs = _image(tmp_path)
    data = tmp_path / "data"
    (data / "docker" / ".c3.new" / "half").mkdir(parents=True)  # a manager killed mid-copy left this
    path, created = specialdirs.ensure(str(data), "docker", "c3", UID, GID, SIZE, rootfs)
    assert created and not (data / "docker" / ".c3.new").exists()
    assert os.path.isfile(os.path.join(path, "image/overlay2/repositories.json"))
