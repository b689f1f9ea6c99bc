"""``python -m pytest_vcluster syncer-image``: build (and push) the syncer image of this package.

    python -m pytest_vcluster syncer-image
        builds <chart's repository>:<version>-<content hash> with the local docker and prints it
    python -m pytest_vcluster syncer-image --push registry.example.com/team/syncer
        also tags it registry.example.com/team/syncer:<version>-<content hash> and pushes it;
        pass the printed reference as --vcluster-syncer-image (a REPOSITORY:TAG is pushed as given)
"""

from __future__ import annotations

import argparse
import sys
import time

from .core.errors import VClusterError


def _syncer_image(args: argparse.Namespace) -> int:
    from .core import images

    def progress(line: str) -> None:
        print(f"pytest-vcluster: {line}", file=sys.stderr, flush=True)

    started = time.monotonic()
    ref, digest = images.default_ref(args.base_image)
    target = ref
    if args.push:
        push = args.push.strip()
        target = images.parse_ref(push, source="--push") if images.has_tag(push) else images.ImageRef(push, ref.tag)
    if not args.rebuild and images.docker_has(ref):
        progress(f"{ref} is in the local docker already (built from the same content)")
    else:
        images.build(ref, base_image=args.base_image, digest=digest, progress=progress)
        progress(f"built {ref} in {time.monotonic() - started:.1f}s")
    if target != ref:
        images.tag(ref, target)
    if args.push:
        images.push(target, progress)
    print(target)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .core import images

    parser = argparse.ArgumentParser(prog="python -m pytest_vcluster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "syncer-image",
        help="build (and push) the syncer image",
        description="Build the syncer image from the source shipped with this package, tagged "
        "<version>-<content hash>, with the local docker; print its reference.",
    )
    build.add_argument("--push", metavar="REF", help="push it as REPOSITORY (content tag added) or REPOSITORY:TAG")
    build.add_argument(
        "--base-image", default=images.DEFAULT_BASE_IMAGE, metavar="REF",
        help=f"base image with Python {images.IMAGE_PYTHON} (default {images.DEFAULT_BASE_IMAGE}); "
        "the same value must be given to pytest as --vcluster-syncer-base-image",
    )
    build.add_argument("--rebuild", action="store_true", help="build even if the local docker has the image")
    args = parser.parse_args(argv)
    try:
        return _syncer_image(args)
    except VClusterError as exc:
        print(f"pytest-vcluster: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
