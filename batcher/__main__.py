from batcher.launch import main

main()
