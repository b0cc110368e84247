from jorge_cli.main import main

main()
