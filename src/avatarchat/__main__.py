from avatarchat.cli import main

if __name__ == "__main__":  # render worker processes import this module too (spawn) and must not start a server
    raise SystemExit(main())
