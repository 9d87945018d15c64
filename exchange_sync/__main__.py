from exchange_sync.cli import main

main()
