from sepsiscope.cli import main

main()
