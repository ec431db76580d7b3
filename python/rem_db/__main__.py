from rem_db.cli import main

main()
