"""--format takes Go text/template syntax and prints values as Go does."""

from __future__ import annotations

import pytest

from pallet.transfer.cli.gotemplate import TemplateError, render

DATA = {
    "Name": "127.0.0.1:5000/lib/busybox",
    "Digest": "sha256:abc",
    "RepoTags": ["v1", "v2"],
    "Labels": {"b": "2", "a": "1"},
    "Layers": ["sha256:l1", "sha256:l2"],
    "Env": None,
    "Created": "2023-11-14T22:13:20Z",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Name}}", "127.0.0.1:5000/lib/busybox"),
        ("{{.Digest}} {{len .Layers}}", "sha256:abc 2"),
        ("{{.Labels}}", "map[a:1 b:2]"),
        ("{{.RepoTags}}", "[v1 v2]"),
        ("{{.Env}}", "<no value>"),
        ("{{.Nope}}", "<no value>"),
        ('{{index .Labels "b"}}', "2"),
        ("{{index .Layers 1}}", "sha256:l2"),
        ("{{range .Layers}}{{.}}\n{{end}}", "sha256:l1\nsha256:l2\n"),
        ("{{range $i, $l := .Layers}}{{$i}}:{{$l}} {{end}}", "0:sha256:l1 1:sha256:l2 "),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
        ("{{range .Env}}x{{else}}empty{{end}}", "empty"),
        ("{{if .Env}}yes{{else if .Labels}}labels{{else}}no{{end}}", "labels"),
        ("{{with .Labels}}{{.a}}{{end}}", "1"),
        ('{{if eq .Digest "sha256:abc"}}same{{end}}', "same"),
        ("{{.Name | upper}}", "127.0.0.1:5000/LIB/BUSYBOX"),
        ('{{join .RepoTags ","}}', "v1,v2"),
        ('{{printf "%s has %d layers" .Digest (len .Layers)}}', "sha256:abc has 2 layers"),
        ("a  {{- .Digest -}}  b", "asha256:abcb"),
        ("{{/* a comment */}}x", "x"),
        ("{{$.Digest}}", "sha256:abc"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Name", "unclosed action"),
        ("{{if .Name}}x", "missing {{end}}"),
        ("{{end}}", "unexpected"),
        ("{{nosuch .Name}}", 'function "nosuch" not defined'),
        ("{{$x}}", "undefined variable"),
        ("{{.Name.Sub.Deeper}}", "can't evaluate field Sub"),
    ],
)
def test_errors_say_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, DATA)
