"""`python -m optimum_gliner2.variants`: see `optimum_gliner2.variants.cli`."""

from optimum_gliner2.variants.cli import main

if __name__ == "__main__":
    main()
