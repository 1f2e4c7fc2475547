"""`python -m mmmae ...` is the `mmmae` console script."""

from mmmae.cli import main

if __name__ == "__main__":
    main()
