from rapidly.cli import main

main()
