"""Examples in: local files and folders, the Hugging Face Hub, the embedded IMDB sample; stratified sampling."""
