from notary_server.cli import main

main()
