from modelgate.cli.main import main

main()
