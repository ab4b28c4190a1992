from .cli.shoald import main

main()
