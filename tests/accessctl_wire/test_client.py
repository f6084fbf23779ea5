"""The partner API client's URLs: a file's path percent-encoded segment by segment."""

import pytest

from accessctl_wire.client import file_path, segment


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("model.safetensors", "/api/v1/grants/3/files/model.safetensors"),
        ("a #1?.bin", "/api/v1/grants/3/files/a%20%231%3F.bin"),
        ("50% off+more", "/api/v1/grants/3/files/50%25%20off%2Bmore"),
        ('dir/sub/"q" ü模.bin', "/api/v1/grants/3/files/dir/sub/%22q%22%20%C3%BC%E6%A8%A1.bin"),
        ("a;b=c&d", "/api/v1/grants/3/files/a%3Bb%3Dc%26d"),
        ("~keep_-.", "/api/v1/grants/3/files/~keep_-."),
    ],
)
def test_a_file_path_is_encoded_per_segment_with_the_slashes_kept(path, url):
    assert file_path(3, path) == url


def test_a_segment_encodes_its_slash():
    assert segment("v4/x") == "v4%2Fx"
