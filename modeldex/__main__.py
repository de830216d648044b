"""`python -m modeldex`: the same command as the `modeldex` console script."""

from modeldex.cli.main import main

if __name__ == "__main__":
    main()
