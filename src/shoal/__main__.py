from shoal.cli.shoald import main

main()
